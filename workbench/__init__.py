"""The workbench kernel: the `wb` CLI, dataset I/O, schemas, run directories and offline fixtures.

Nothing domain-specific lives here, and importing it never pulls in torch, vllm or streamlit.
"""

__version__ = "0.1.0"
