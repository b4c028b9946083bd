"""ColTran (Kumar, Weissenborn & Kalchbrenner, ICLR 2021) in PyTorch: core, colour upsampler, spatial upsampler."""

from baselines.coltran.config import PRESETS, ColTranConfig, coltran_config
from baselines.coltran.step import ColTranStep

__all__ = ["PRESETS", "ColTranConfig", "ColTranStep", "coltran_config"]
