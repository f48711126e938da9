"""Forecasting domain: collection demand (Austin) and skip fill level (Blantyre).

Modules:

* ``austin`` -- loading the Austin file (pounds -> kilograms) and the two demand grains;
* ``features`` -- demand feature rows (calendar, US collection holidays, lags), shared by
  training and recursive serving;
* ``demand`` -- global LightGBM models per grain, recursive forecasting, ``DemandForecaster``;
* ``intervals`` -- Prophet per series for prediction intervals (fitted at training only);
* ``fill_level`` -- Blantyre skip data, fill features, model, ``FillLevelPredictor``;
* ``metrics`` -- WAPE, MASE, MAE, interval coverage;
* ``explain`` -- top feature contributions (LightGBM ``pred_contrib``), in-process;
* ``repository`` -- versioned artefacts under ``model_repository/<model>/<version>/``;
* ``inference`` -- ``InferFn`` over the model-server port (from worker threads), chunking,
  in-process ONNX Runtime;
* ``service`` -- the async API the servicer and the planner call.

Training, backtests and the ``wasteml train`` CLI are tools (``wasteml_tools.forecasting``); the
LightGBM -> ONNX export is ``wasteml_export.lightgbm``.

There is no churn data in ``settings.data_dir``, so there is no churn model.
"""
