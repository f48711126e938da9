"""Collection planning: predicted fill + nearby complaints -> which bins to visit -> routes."""
