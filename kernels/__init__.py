"""Pure numpy/scipy kernels of tos2ca-batch: no I/O, no services, no globals.

Every function here takes arrays and returns arrays or small tables; the stages in
``tos2ca_batch`` move the data, these functions do the arithmetic.
"""
