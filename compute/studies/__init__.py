"""The studies: each reads a manifest, answers through an Answerer, and writes to the store."""

from compute.studies.failures import TooManyFailuresError
from compute.studies.kinds import STUDY_KINDS, StudyKind
from compute.studies.options import OptionError, check_options
from compute.studies.run import RunSummary, run_study

__all__ = ["STUDY_KINDS", "OptionError", "RunSummary", "StudyKind", "TooManyFailuresError", "check_options", "run_study"]
