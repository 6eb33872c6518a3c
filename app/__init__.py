"""The Streamlit workbench: look at runs and data, launch the same `wb` commands, watch them, compare runs.

Start it with `wb ui [--workspace DIR]`. `app/main.py` is the Streamlit entry point and `app/views/` (the pages) hold
layout only; what the pages compute lives in the modules beside this file (no Streamlit in them), so it
is importable and unit-tested. Nothing outside `app/` imports it.
"""
