# One image for both processes: `python run_web.py` (default) or `python run_worker.py`.
FROM python:3.13-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 NODE_ENV=production HOST=0.0.0.0 PORT=3000
WORKDIR /app

RUN useradd --create-home --uid 10001 hireflow
COPY pyproject.toml ./
COPY hireflow ./hireflow
COPY run_web.py run_worker.py ./
RUN pip install --no-cache-dir .

USER hireflow
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:3000/health/ready', timeout=2).status == 200 else 1)"
CMD ["python", "run_web.py"]
