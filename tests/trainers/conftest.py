"""Tiny models are faster on one thread, and the test machine is shared: pin torch to one thread."""

import torch

torch.set_num_threads(1)
