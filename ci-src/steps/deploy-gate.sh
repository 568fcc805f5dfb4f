# shellcheck shell=bash
# Ask the broker whether the grants would be allowed (nothing is minted, the ID token is not spent).
broker gate --broker "$OIDC_BROKER_URL" --grants-json "$OIDC_BROKER_GRANTS"
