# One image for every stage (plan, stats, map, reduce, relabel, publish, finalize).
# The base is pinned by digest (the multi-arch index of python:3.11-slim), the Python packages by
# manifests/image-requirements.txt (versions and sha256 of every file, `make lock`): a rebuild
# months later installs the same bytes. To move the base: `docker buildx imagetools inspect
# python:3.11-slim` (or `crane digest python:3.11-slim`) and paste the index digest here.
FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HDF5_USE_FILE_LOCKING=FALSE \
    TOS2CA_BUILTIN_CATALOG=/opt/tos2ca/manifests/datasets.json \
    TOS2CA_WORKDIR=/work

RUN useradd --create-home --uid 1000 tos2ca && mkdir -p /work && chown tos2ca /work
WORKDIR /opt/tos2ca
# The locked set first, in its own layer (a code change does not reinstall it), every file's hash
# checked; then the project alone, built with the locked setuptools (build isolation would fetch an
# unpinned one); pip check proves the installed set whole and consistent.
COPY manifests/image-requirements.txt ./manifests/
RUN pip install --no-cache-dir --require-hashes -r manifests/image-requirements.txt
COPY pyproject.toml README.md ./
COPY kernels ./kernels
COPY tos2ca_batch ./tos2ca_batch
COPY manifests ./manifests
RUN pip install --no-cache-dir --no-deps --no-build-isolation ".[mpi,parquet,earthdata]" && pip check

USER tos2ca
WORKDIR /work
ENTRYPOINT ["tos2ca-batch"]
CMD ["--help"]
