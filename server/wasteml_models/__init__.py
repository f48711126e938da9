"""Model facts shared by the server and the export tools: names, signatures, the tokenizer.

Each fact has one home: the model names here; tensor names, dtypes, dimensions and batch
bounds in each model's committed ``model_repository/<name>/config.pbtxt``, read with
:func:`wasteml_models.config.load_signature`; the text encoder's tokenisation in
:mod:`wasteml_models.tokenizer`. Nothing here imports the server or the export code.
"""

#: The fp32 sentence encoder (all-MiniLM-L6-v2), served by Triton for search.
TEXT_ENCODER = "text_encoder"
#: Its INT8 variant (weight-only quantised MatMuls).
TEXT_ENCODER_INT8 = "text_encoder_int8"
#: Its TensorRT plan (GPU only).
TEXT_ENCODER_TRT = "text_encoder_trt"
#: Skip fill fraction at a target time (LightGBM -> ONNX).
FILL_LEVEL = "fill_level"
#: Daily collection demand per service line (LightGBM -> ONNX).
DEMAND_DAILY = "demand_daily"
#: Weekly collection demand per garbage route (LightGBM -> ONNX).
DEMAND_ROUTE_WEEKLY = "demand_route_weekly"
