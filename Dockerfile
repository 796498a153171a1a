# Two stages: the first builds the app's wheel (templates/ and static/ inside,
# see setup.py); the second installs the dependencies, then that wheel, so a
# code change rebuilds only the last layers. No source tree in the image.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
# Dependencies from pyproject.toml alone: this layer is reused until they change.
COPY pyproject.toml /tmp/pyproject.toml
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && useradd --system --home-dir /app quality
COPY --from=build /wheels /wheels
RUN pip install --no-deps /wheels/*.whl
USER quality
EXPOSE 8000
# Exec form: `quality serve` is PID 1 and receives SIGTERM from `docker stop`.
CMD ["quality", "serve", "--host", "0.0.0.0", "--port", "8000"]
