"""pkcard reference backend: challenges, token redemption and the card registry."""
