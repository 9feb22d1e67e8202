# One image for web and workers. GPU workers run it with an NVIDIA device reservation.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config config
COPY registry registry
COPY ui ui
COPY workers workers
COPY templates templates
COPY static static
COPY manage.py ./
RUN pip install --no-cache-dir -e . && useradd --create-home registry && mkdir -p /app/var && chown registry /app/var
USER registry
EXPOSE 8000
CMD ["gunicorn", "config.wsgi:application", "-c", "config/gunicorn.conf.py", "--bind", "0.0.0.0:8000", "--workers", "4", "--threads", "4"]
