"""The demo's sample warehouse: a SQLite file of customers, realistic enough to exercise every rule.

About 2% of emails break ActiveCampaign's format rules, about 1% are duplicates that differ only in
case, and `plan` is a segment column that becomes a custom field.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

FIRST = ["Olivia", "Liam", "Emma", "Noah", "Ava", "Elijah", "Sophia", "Mateo", "Isabella", "Lucas", "Mia",
         "Amelia", "Hiro", "Aisha", "Chloé", "José", "Priya", "Wei", "Fatima", "Jonas", "Zoë", "Sven", "Nia",
         "Diego", "Hannah", "Omar", "Grace", "Ivan", "Leila", "Kwame", "Mei", "Rafael", "Sara", "Tomás"]
LAST = ["Smith", "Johnson", "Williams", "Brown", "Garcia", "Miller", "Davis", "Martínez", "Lopez", "Wilson",
        "Anderson", "Thomas", "Nguyen", "Kim", "Patel", "Müller", "O'Brien", "Rossi", "Kowalski", "Haddad",
        "Okafor", "Tanaka", "Silva", "Novak", "Larsen", "Dubois", "Cohen", "Ivanova", "Chen", "Moreau"]
DOMAINS = ["example.com", "mail.example.org", "shop.example.net", "example.co.uk", "inbox.example.io"]
PLANS = ["free", "starter", "pro", "enterprise"]
BROKEN = ["{local}", "{local}@", "@{domain}", "{local}@@{domain}", "{local}@{host}", "{local}(x)@{domain}",
          "{local} {local}@{domain}", "{local}@{domain}.c", "{local}@[{domain}]", "{local},@{domain}"]

# What the unsubscribes write-back (dags/activecampaign_unsubscribes.py) fills; created empty so audience
# queries can leave its people out from the first run on.
UNSUBSCRIBES_SCHEMA = """
CREATE TABLE IF NOT EXISTS activecampaign_unsubscribes (
    email VARCHAR(320) NOT NULL, list_id VARCHAR(32) NOT NULL, status VARCHAR(16) NOT NULL,
    changed_at VARCHAR(40), changed_by VARCHAR(16) NOT NULL, PRIMARY KEY (email, list_id)
)
"""

SCHEMA = """
CREATE TABLE customers (
    customer_id INTEGER PRIMARY KEY,
    email TEXT,
    first_name TEXT,
    last_name TEXT,
    phone TEXT,
    plan TEXT,
    lifetime_value REAL,
    opted_in INTEGER NOT NULL DEFAULT 1
)
"""


def _customer(rng: random.Random, customer_id: int) -> tuple:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    local = f"{first}.{last}.{customer_id}".lower().replace("'", "").replace(" ", "")
    domain = rng.choice(DOMAINS)
    roll = rng.random()
    if roll < 0.02:
        email = rng.choice(BROKEN).format(local=local, domain=domain, host=domain.split(".")[0])
    else:
        email = f"{local}@{domain}"
    phone = f"+1-555-{rng.randrange(1000000):07d}" if rng.random() < 0.7 else None
    plan = rng.choices(PLANS, weights=[50, 30, 15, 5])[0]
    value = round(rng.lognormvariate(5, 1.2), 2)
    return (customer_id, email, first, last, phone, plan, value, 1)


def build_warehouse(path: Path, customers: int = 20_000, seed: int = 2026) -> int:
    """Create (replace) the warehouse with `customers` rows, ~1% of them case-only duplicates."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    rng = random.Random(seed)
    rows = [_customer(rng, i) for i in range(1, customers + 1)]
    duplicates = []
    for i in rng.sample(range(customers), customers // 100):
        original = rows[i]
        if "@" in (original[1] or ""):
            duplicates.append((customers + len(duplicates) + 1, original[1].upper(), *original[2:]))
    with sqlite3.connect(path) as db:
        db.execute(SCHEMA)
        db.execute(UNSUBSCRIBES_SCHEMA)
        db.executemany("INSERT INTO customers VALUES (?,?,?,?,?,?,?,?)", rows + duplicates)
    return len(rows) + len(duplicates)


def change_warehouse(path: Path, fraction: float = 0.01, seed: int = 7) -> dict[str, int]:
    """Between two runs: some customers change plan, some opt out, some new ones arrive."""
    rng = random.Random(seed)
    with sqlite3.connect(path) as db:
        ids = [r[0] for r in db.execute("SELECT customer_id FROM customers WHERE opted_in = 1")]
        count = max(1, int(len(ids) * fraction))
        changed = rng.sample(ids, count)
        db.executemany("UPDATE customers SET plan = 'enterprise', lifetime_value = lifetime_value + 500 "
                       "WHERE customer_id = ?", [(i,) for i in changed])
        left = rng.sample(sorted(set(ids) - set(changed)), max(1, count // 4))
        db.executemany("UPDATE customers SET opted_in = 0 WHERE customer_id = ?", [(i,) for i in left])
        start = db.execute("SELECT MAX(customer_id) FROM customers").fetchone()[0] + 1
        new = [_customer(rng, start + i) for i in range(max(1, count // 4))]
        db.executemany("INSERT INTO customers VALUES (?,?,?,?,?,?,?,?)", new)
    return {"changed": len(changed), "opted_out": len(left), "new": len(new)}
