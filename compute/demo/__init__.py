"""The demo world: synthetic chest X-rays (`synth`), the tiny trained Gemma-3 demo model (`model`)
and the synthetic DICOM writer."""

from compute.demo.dicom_writer import write_dicom

__all__ = ["write_dicom"]
