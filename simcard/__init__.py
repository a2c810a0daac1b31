"""simcard: simulated PK and KZZ cards that execute the pkcard card profile."""
