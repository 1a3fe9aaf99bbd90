FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md celeryconfig.py ./
COPY hidesync_events ./hidesync_events
COPY workers ./workers
COPY examples ./examples
RUN pip install --no-cache-dir ".[fastapi]" \
    && useradd --create-home --uid 1000 hidesync

USER hidesync
CMD ["hidesync-events", "--help"]
