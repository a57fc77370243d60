"""The offline demo: a real sample project, replayed agents and a deterministic plan.

``orchestrator demo`` (and ``make demo``) copies ``SAMPLE_PROJECT`` (a small horse-racing
analytics package with its own tests) into a fresh git repository and runs ``WORKFLOW`` on
``ITEMS`` with the agents of ``AGENTS_FILE``: the same agent names, models and prices as the
default configuration, every one on the replay provider, which plays ``SCRIPT``. The script's
header says what each task does, which patch conflicts on purpose and what the merged branch's
own tests then report.
"""

from __future__ import annotations

from pathlib import Path

#: This folder.
DEMO_DIR = Path(__file__).resolve().parent
#: The project the demo works on; copied and committed before the run, never changed in place.
SAMPLE_PROJECT = DEMO_DIR / "sample_project"
#: The replay script: scripted model turns per task id.
SCRIPT = DEMO_DIR / "script.yml"
#: agents.yml for the demo (replay provider, real model names and prices).
AGENTS_FILE = DEMO_DIR / "agents.yml"
#: The workflow the demo runs, the items it runs it on and the request text ({request}).
WORKFLOW = "analysis_implementation_pipeline"
ITEMS = ["pace metrics", "weather normalization"]
REQUEST = "Add pace metrics and weather normalization to the racing analytics package"
