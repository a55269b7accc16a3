"""Code packages for image-less deploys (issue 23): resolving, locking and packing npm and PyPI servers into
deterministic zips. Called by ``tasks``; imports nothing above ``fc``."""
