"""pkcard: ISO 7816-4 middleware for the Slovenian PK and KZZ cards."""
