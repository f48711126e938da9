"""Forecasting domain: collection demand (Austin) and skip fill level (Blantyre).

Modules:

* ``austin`` -- loading the Austin file (pounds -> kilograms) and the two demand grains;
* ``features`` -- demand feature rows (calendar, US collection holidays, lags), shared by
  training and recursive serving;
* ``demand`` -- global LightGBM models per grain, recursive forecasting, ``DemandForecaster``;
* ``intervals`` -- Prophet per series for prediction intervals (fitted at training only);
* ``fill_level`` -- Blantyre skip data, fill features, model, ``FillLevelPredictor``;
* ``metrics`` -- WAPE, MASE, MAE, interval coverage;
* ``backtest`` -- rolling-origin backtests with seasonal-naive/naive/constant-rate baselines;
* ``onnx_export`` -- LightGBM -> ONNX (onnxmltools) and parity with ``Booster.predict``;
* ``explain`` -- top feature contributions (LightGBM ``pred_contrib``), in-process;
* ``repository`` -- versioned artefacts under ``model_repository/<model>/<version>/``;
* ``inference`` -- ``InferFn`` over the aio ``TritonClient`` (from worker threads), chunking;
* ``training`` / ``cli`` -- the ``wasteml train demand|fill-level`` pipeline.

There is no churn data in ``settings.data_dir``, so there is no churn model.
"""
