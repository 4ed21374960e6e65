# omnistock: a multi-stage image that runs as a non-root user.
#   docker build -t omnistock .
#   docker run -p 50051:50051 -e OMNISTOCK_DATABASE_URL=postgresql://... omnistock
# Builds from the source tree; nothing but PyPI packages is fetched.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY client ./client
COPY server ./server
RUN python -m venv /opt/omnistock \
    && /opt/omnistock/bin/pip install --no-compile . \
    && /opt/omnistock/bin/python -m compileall -q /opt/omnistock/lib

FROM python:3.11-slim
RUN groupadd --system --gid 10001 omnistock \
    && useradd --system --uid 10001 --gid omnistock --home-dir /data --create-home omnistock
COPY --from=build /opt/omnistock /opt/omnistock
# Inside a container the server listens on every interface; the database defaults to an
# SQLite file in the user's volume (set OMNISTOCK_DATABASE_URL for PostgreSQL).
ENV PATH=/opt/omnistock/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    OMNISTOCK_LISTEN=0.0.0.0:50051 \
    OMNISTOCK_DATABASE_URL=sqlite:////data/omnistock.db
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 50051
# The gRPC health service, asked by the image's own probe (`omnistock health`).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["omnistock", "health", "--timeout", "3"]
ENTRYPOINT ["omnistock"]
CMD ["serve"]
