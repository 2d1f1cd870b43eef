"""Build knowledge-packs/crm.db, the sample database of the bundled ``crm`` pack.

Run ``python knowledge-packs/build_crm_db.py`` to rebuild it from the data below (deterministic:
the same data gives the same database contents).
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

CUSTOMERS = [
    (1, "Ada Lovelace", "ada@example.com", "London", "2023-01-15"),
    (2, "Grace Hopper", "grace@example.com", "New York", "2023-02-03"),
    (3, "Alan Turing", "alan@example.com", "Manchester", "2023-03-21"),
    (4, "Katherine Johnson", "katherine@example.com", "Hampton", "2023-04-09"),
    (5, "Edsger Dijkstra", "edsger@example.com", "Rotterdam", "2023-05-30"),
    (6, "Barbara Liskov", "barbara@example.com", "Boston", "2023-06-12"),
    (7, "Donald Knuth", "don@example.com", "Stanford", "2023-07-01"),
    (8, "Margaret Hamilton", "margaret@example.com", "Cambridge", "2023-08-18"),
    (9, "Tim Berners-Lee", "tim@example.com", "Geneva", "2023-09-05"),
    (10, "Frances Allen", "frances@example.com", "Peru", "2023-10-27"),
]
# (id, customer_id, ordered_on, product, quantity, unit_price_cents)
ORDERS = [
    (1, 1, "2024-01-05", "Analytical Engine manual", 2, 4500),
    (2, 1, "2024-02-11", "Punched cards (box)", 10, 1200),
    (3, 1, "2024-03-02", "Brass gears", 5, 3000),
    (4, 2, "2024-01-17", "COBOL handbook", 1, 5900),
    (5, 2, "2024-02-20", "Moth trap", 3, 800),
    (6, 2, "2024-04-08", "Compiler toolkit", 1, 19900),
    (7, 2, "2024-05-14", "Nanosecond wire", 12, 150),
    (8, 3, "2024-01-29", "Enigma rotor", 3, 7500),
    (9, 3, "2024-03-15", "Paper tape", 20, 250),
    (10, 4, "2024-02-02", "Slide rule", 2, 2500),
    (11, 4, "2024-06-19", "Orbital tables", 1, 12000),
    (12, 5, "2024-01-11", "Shortest path poster", 4, 1500),
    (13, 5, "2024-03-27", "Semaphore set", 2, 3500),
    (14, 5, "2024-05-05", "Fountain pen", 1, 9900),
    (15, 6, "2024-02-14", "Abstract data types course", 1, 29900),
    (16, 6, "2024-04-22", "CLU reference", 2, 4200),
    (17, 7, "2024-01-03", "TAOCP volume 1", 1, 8900),
    (18, 7, "2024-01-03", "TAOCP volume 2", 1, 8900),
    (19, 7, "2024-01-03", "TAOCP volume 3", 1, 8900),
    (20, 7, "2024-06-01", "Pipe organ sheet music", 3, 2200),
    (21, 7, "2024-07-09", "TeX stickers", 50, 100),
    (22, 8, "2024-02-25", "Core rope memory", 1, 45000),
    (23, 8, "2024-05-30", "Apollo patch", 6, 700),
    (24, 9, "2024-03-08", "NeXT cube replica", 1, 59900),
    (25, 9, "2024-04-30", "Hypertext notebook", 5, 1800),
    (26, 9, "2024-07-21", "Ethernet cable", 10, 500),
    (27, 10, "2024-02-09", "Optimizing compilers book", 2, 6400),
    (28, 10, "2024-06-25", "Fortran coding sheets", 30, 120),
    (29, 3, "2024-07-30", "Chess set", 1, 4900),
    (30, 1, "2024-08-12", "Poetry notebook", 2, 1100),
]

SCHEMA = """
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    city TEXT NOT NULL,
    created_on TEXT NOT NULL
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    ordered_on TEXT NOT NULL,
    product TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    unit_price_cents INTEGER NOT NULL
);
CREATE INDEX orders_customer ON orders(customer_id);
"""


def build(path: Path) -> None:
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA)
        db.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?)", CUSTOMERS)
        db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)", ORDERS)
    db.close()


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("crm.db")
    build(target)
    print(f"wrote {target}: {len(CUSTOMERS)} customers, {len(ORDERS)} orders")
