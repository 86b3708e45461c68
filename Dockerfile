# The Aftersales image: worker, web app, scheduler and simulators from one build.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY workflows workflows
COPY activities activities
COPY web web
COPY db db
COPY aftersales aftersales
COPY simulators simulators
RUN pip install --no-cache-dir . && useradd --create-home --uid 10001 aftersales
USER aftersales
EXPOSE 5000
CMD ["aftersales", "web", "--host", "0.0.0.0", "--port", "5000"]
