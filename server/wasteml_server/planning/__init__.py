"""Collection planning: predicted fill + nearby complaints -> which bins to visit -> routes.

Modules: ``request`` (the day to plan as the contract states it, and its rules), ``selection``
(must-visit/optional and penalties), ``plan`` (stages, the plan and its totals), ``ports``
(what the planner needs), ``planner`` (the stages), ``sources`` (the ports over the server's
own forecasting and search services).
"""
