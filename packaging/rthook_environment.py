"""PyInstaller runtime hook: give child processes the environment the operator set.

A one-file binary's bootloader puts its extraction dir first on LD_LIBRARY_PATH (keeping
an original value in LD_LIBRARY_PATH_ORIG). This process's loader has read it already,
so restoring it changes nothing here; it only stops the programs the appliance runs
(debootstrap, tar, umount, docker credential helpers) from loading our bundled copies
of libssl, libz and friends instead of the system's own. Left alone when the bundle is
not first on the path (a one-folder build, or an operator's own setting).
"""

import os
import sys

_bundle = getattr(sys, "_MEIPASS", None)
if _bundle and os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep)[0] == _bundle:
    _original = os.environ.pop("LD_LIBRARY_PATH_ORIG", None)
    if _original:
        os.environ["LD_LIBRARY_PATH"] = _original
    else:
        del os.environ["LD_LIBRARY_PATH"]
