r"""The kernel a grading worker starts: ipykernel's own, without its debugger.

``python -m rmteach.grading.grading_kernel -f CONNECTION_FILE`` is ``python -m
ipykernel_launcher`` with one difference: ``debugpy`` cannot be imported, so
ipykernel starts with its debugger off instead of importing debugpy (some 0.08 s
of CPU per kernel, once per submission).  Nobody attaches a debugger to a
notebook being autograded.  :mod:`rmteach.grading.kernel_prestart` launches its
kernels with it; everything else about the kernel (the sandbox, its limits, the
kernelspec's Python) is unchanged.
"""

import sys

if __name__ == "__main__":
    sys.modules["debugpy"] = None  # import debugpy -> ImportError: ipykernel runs without a debugger
    if sys.path and sys.path[0] == "":  # as ipykernel_launcher: the folder is put back by IPython
        del sys.path[0]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()
