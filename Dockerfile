# One image for every stage (plan, stats, map, reduce, relabel, publish, finalize).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HDF5_USE_FILE_LOCKING=FALSE \
    TOS2CA_BUILTIN_CATALOG=/opt/tos2ca/manifests/datasets.json \
    TOS2CA_WORKDIR=/work

RUN useradd --create-home --uid 1000 tos2ca && mkdir -p /work && chown tos2ca /work
WORKDIR /opt/tos2ca
COPY pyproject.toml README.md ./
COPY kernels ./kernels
COPY tos2ca_batch ./tos2ca_batch
COPY manifests ./manifests
RUN pip install --no-cache-dir ".[mpi,parquet,earthdata]"

USER tos2ca
WORKDIR /work
ENTRYPOINT ["tos2ca-batch"]
CMD ["--help"]
