"""Triton if it is installed (Linux with a CUDA build of torch), else None; one place to import it from."""

try:
    import triton
    import triton.language as tl
except ImportError:  # macOS, Windows: every call takes the reference path
    triton = None
    tl = None

__all__ = ["triton", "tl"]
