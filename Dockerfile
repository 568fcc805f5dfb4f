# The oidc-broker CLI and server image: what the CI components run (`image:`), and `oidc-broker serve` for operators.
# Build: docker build -t oidc-broker:$(node -p 'require("./package.json").version') .
# The runtime stage installs the same `npm pack` tarball that releases attach, so the image and the tarball cannot differ.

FROM node:20.20.2-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json README.md ./
COPY src/ src/
COPY examples/ examples/
COPY schemas/ schemas/
COPY templates/ templates/
COPY ci-templates/ ci-templates/
RUN npx tsc -p tsconfig.build.json \
 && chmod +x dist/src/cli/main.js \
 && npm pack --ignore-scripts --pack-destination /pkg

FROM node:20.20.2-bookworm-slim
ENV NODE_ENV=production
COPY --from=build /pkg/ /opt/oidc-broker-pkg/
RUN npm install --global --omit=dev --no-audit --no-fund /opt/oidc-broker-pkg/*.tgz \
 && rm -rf /opt/oidc-broker-pkg \
 && npm cache clean --force \
 && oidc-broker --version
# Non-root (the node image's uid 1000). No ENTRYPOINT: GitLab runs job scripts with the image's shell (/bin/sh, bash).
USER node
CMD ["oidc-broker", "--help"]
