"""Streamlit entry point of the workbench app: `wb ui [--workspace DIR]` runs `streamlit run app/main.py`.

The pages live in `app/views/` (layout only; a folder named `pages/` would also be served by Streamlit's
older automatic page discovery, bypassing this navigation); their URLs come from the file names
(`/browse`, ...).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).parent / "views"

st.set_page_config(page_title="Workbench", page_icon=":material/science:", layout="wide")
nav = st.navigation({
    "Runs": [st.Page(PAGES / "runs.py", title="Runs", icon=":material/list:", default=True),
             st.Page(PAGES / "recipe.py", title="Recipe", icon=":material/account_tree:"),
             st.Page(PAGES / "new_job.py", title="New job", icon=":material/rocket_launch:")],
    "Data": [st.Page(PAGES / "browse.py", title="Data browser", icon=":material/table_view:"),
             st.Page(PAGES / "report.py", title="Curation report", icon=":material/filter_alt:"),
             st.Page(PAGES / "dedup.py", title="Dedup & decontamination", icon=":material/content_copy:"),
             st.Page(PAGES / "mixture.py", title="Mixture lab", icon=":material/science:")],
    "Models": [st.Page(PAGES / "generation.py", title="Generation monitor", icon=":material/stream:"),
               st.Page(PAGES / "pairs.py", title="Pairs", icon=":material/balance:"),
               st.Page(PAGES / "training.py", title="Training", icon=":material/show_chart:"),
               st.Page(PAGES / "eval.py", title="Evaluations", icon=":material/fact_check:"),
               st.Page(PAGES / "chat.py", title="Chat", icon=":material/chat:")],
    "App": [st.Page(PAGES / "settings.py", title="Settings", icon=":material/settings:")],
})
nav.run()
