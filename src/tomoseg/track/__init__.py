"""Follow objects between two scans of one sample: registration, matching, changes (no PyTorch unless
images have to be segmented)."""

from .matching import STATUSES, MatchOptions, carry_labels, match
from .output import track_section, write_tracking
from .registration import Registration, RegistrationOptions, given_transform, register
from .scoring import compare_with_truth
from .tracking import TrackOptions, Tracking, track

__all__ = ["track", "Tracking", "TrackOptions", "register", "Registration", "RegistrationOptions",
           "given_transform", "match", "MatchOptions", "carry_labels", "STATUSES", "write_tracking",
           "track_section", "compare_with_truth"]


class _CallableModule(__import__("types").ModuleType):
    """``tomoseg.track(...)`` calls :func:`track`; ``tomoseg.track.register`` etc. stay reachable."""

    def __call__(self, *args, **kwargs):
        return track(*args, **kwargs)


__import__("sys").modules[__name__].__class__ = _CallableModule
# what help(), inspect.signature and Jupyter's `tomoseg.track?` show: the function's parameters and docs
__signature__ = __import__("inspect").signature(track)
__doc__ = f"{__doc__}\n\nCalled as a function, ``tomoseg.track{__signature__}`` is :func:`track`:\n\n{track.__doc__}"
