"""The studies: each reads a manifest, answers through an Answerer, and writes to the store."""

from compute.studies.failures import TooManyFailuresError
from compute.studies.kinds import STUDIES, Study
from compute.studies.options import OptionError, check_options
from compute.studies.run import RunSummary, run_study

__all__ = ["STUDIES", "OptionError", "RunSummary", "Study", "TooManyFailuresError", "check_options", "run_study"]
