"""Count the text_encoder rows and executions Triton serves for one PlanDay (the real Blantyre day, 53 skips).

Usage (repository root, after `make setup models`):

    .venv/bin/python benchmarks/planday_encoder_calls.py

Result: benchmarks/planday_encoder_calls.md.
"""
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from wasteml_testing import DATA_DIR, server_settings  # noqa: E402

from wasteml.client import WastemlClient  # noqa: E402
from wasteml_server.app import BackgroundServer  # noqa: E402
from wasteml_tools.planning.blantyre_request import plan_day_request  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = BackgroundServer(server_settings(Path(tmp)))
        port = server.start(timeout_s=600)
        try:
            triton = server.app.triton_client
            before = server.call(triton.model_statistics("text_encoder"))
            with WastemlClient(f"127.0.0.1:{port}", timeout_s=120) as client:
                client.wait_until_serving(timeout_s=120)
                request = plan_day_request(DATA_DIR, trucks=3, time_limit_s=5)
                stream = client.planning.PlanDay(request, timeout=120)
                plan = [r for r in stream][-1].plan
            after = server.call(triton.model_statistics("text_encoder"))
            n = lambda s: int(s.get("inference_count", 0))  # noqa: E731
            e = lambda s: int(s.get("execution_count", 0))  # noqa: E731
            print(f"bins={len(request.bins)} models_used={[(m.name, m.version) for m in plan.models_used]}")
            print(f"text_encoder rows inferred for one PlanDay: {n(after) - n(before)}; executions: {e(after) - e(before)}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
