# syntax=docker/dockerfile:1
# The image runs the wheel, as `pipx install` would: node only collects the npm assets,
# the build stage makes the wheel (setup.py copies templates/, static/ and htmx into it),
# and the final stage installs that wheel alone, no checkout.

FROM node:20-slim AS assets
WORKDIR /build
COPY package.json package-lock.json ./
# Only what the wheel ships: devDependencies (axe-core, for the browser tests) stay out.
RUN npm ci --omit=dev --no-audit --no-fund

FROM python:3.11-slim AS wheel
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY pyproject.toml setup.py README.md ./
COPY mmu_model ./mmu_model
COPY app ./app
COPY templates ./templates
COPY static ./static
COPY --from=assets /build/node_modules ./node_modules
RUN pip wheel --no-cache-dir --no-deps -w /dist .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MMU_VIZ_DB=/data/traces.sqlite3

RUN groupadd --gid 10001 viz \
    && useradd --create-home --uid 10001 --gid viz --shell /usr/sbin/nologin viz \
    && mkdir /data \
    && chown viz:viz /data

COPY --from=wheel /dist /dist
RUN pip install --no-cache-dir /dist/*.whl && rm -rf /dist

# Numeric, so the host and orchestrators can tell it is not root.
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
# Listening on every address of the container: name the Host clients use with
# MMU_VIZ_ALLOWED_HOSTS or MMU_VIZ_PUBLIC_URL (docker run -e ...), else only localhost is answered.
CMD ["kvm-shadow-viz", "serve", "--host", "0.0.0.0", "--port", "8000"]
