"""Certificate stores (Mono's certmgr): Trust, CA, My, AddressBook, Disallowed, and CRLs."""
