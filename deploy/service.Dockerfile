# One image recipe for the five Python services. Build context: the repository root;
# docker-compose.yml passes SERVICE (the folder under services/) and MODULE (its package).
FROM python:3.11-slim
ARG SERVICE
ARG MODULE
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 AISOPOD_MODULE=${MODULE}
WORKDIR /app
COPY libs/aisopod /app/libs/aisopod
COPY services/${SERVICE} /app/services/${SERVICE}
RUN test -n "${SERVICE}" && test -n "${MODULE}" \
 && pip install /app/libs/aisopod /app/services/${SERVICE} \
 && python -c "import ${MODULE}" \
 && useradd --system --uid 10001 --home-dir /nonexistent aisopod
USER 10001
ENV AISOPOD_HOST=0.0.0.0 AISOPOD_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=5s --timeout=2s --start-period=10s --retries=5 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=2).status == 200 else 1)"
# `exec` makes python PID 1: it gets SIGTERM itself and drains.
CMD ["sh", "-c", "exec python -m \"$AISOPOD_MODULE\""]
