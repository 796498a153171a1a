FROM python:3.11-slim-bookworm
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
COPY quality ./quality
COPY templates ./templates
COPY static ./static
# Editable: templates/ and static/ are read from /app beside the package.
RUN pip install -e . && useradd --system --home /app quality
USER quality
EXPOSE 8000
CMD ["quality", "serve", "--host", "0.0.0.0", "--port", "8000"]
