# syntax=docker/dockerfile:1
# Same steps as `make install` + `make run`: npm ci for htmx and plotly.js, pip install the
# project, uvicorn app.main:create_app. Node.js only exists in the first stage.

FROM node:20-slim AS assets
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MMU_VIZ_DB=/data/traces.sqlite3

RUN groupadd --gid 10001 viz \
    && useradd --create-home --uid 10001 --gid viz --shell /usr/sbin/nologin viz \
    && mkdir /data \
    && chown viz:viz /data

WORKDIR /srv/kvm-shadow-viz
COPY pyproject.toml README.md ./
COPY mmu_model ./mmu_model
COPY app ./app
RUN pip install --no-cache-dir .
COPY templates ./templates
COPY static ./static
# The app serves htmx and plotly.js-basic from these paths, relative to the project directory.
COPY --from=assets /build/node_modules/htmx.org/dist ./node_modules/htmx.org/dist
COPY --from=assets /build/node_modules/plotly.js-basic-dist-min/plotly-basic.min.js \
     ./node_modules/plotly.js-basic-dist-min/plotly-basic.min.js

# Numeric, so the host and orchestrators can tell it is not root.
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
# uvicorn puts the working directory first on sys.path, so app/ and the
# templates/, static/ and node_modules/ beside it are the ones in this image.
CMD ["uvicorn", "app.main:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000"]
