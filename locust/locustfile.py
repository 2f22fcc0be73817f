"""Black Friday load for the gateway.

Headless, as bfctl runs it:
    locust -f locust/locustfile.py --headless -u 200 -r 10 -t 30s --host http://127.0.0.1:8080

The catalogue (categories 1-4, their products, price ranges and the quantity
mix) is the same as the Rust generator's in services/testkit/src/catalog.rs,
so both engines send the same kind of traffic.
"""

import random

from locust import HttpUser, between, task

# (category, product, lowest price, highest price)
PRODUCTS = [
    (1, "laptop-gamer", 800.0, 2500.0),
    (1, "smartphone-x", 300.0, 1200.0),
    (1, "audifonos-bt", 20.0, 200.0),
    (1, "smart-tv-55", 400.0, 1500.0),
    (1, "tablet-10", 150.0, 600.0),
    (2, "chaqueta-invierno", 40.0, 200.0),
    (2, "jeans-slim", 20.0, 90.0),
    (2, "tenis-running", 50.0, 180.0),
    (2, "camiseta-basica", 5.0, 30.0),
    (2, "vestido-fiesta", 30.0, 250.0),
    (3, "licuadora-pro", 30.0, 150.0),
    (3, "juego-sabanas", 20.0, 120.0),
    (3, "cafetera-espresso", 60.0, 400.0),
    (3, "aspiradora-robot", 150.0, 700.0),
    (3, "lampara-led", 10.0, 80.0),
    (4, "perfume-floral", 25.0, 180.0),
    (4, "crema-hidratante", 8.0, 60.0),
    (4, "secador-pelo", 20.0, 150.0),
    (4, "kit-maquillaje", 15.0, 120.0),
    (4, "plancha-cabello", 25.0, 160.0),
]


def quantity():
    """Mostly single items, sometimes a few."""
    roll = random.randrange(10)
    if roll <= 5:
        return 1
    if roll <= 8:
        return random.randint(2, 3)
    return random.randint(4, 10)


def sale():
    categoria, producto_id, low, high = random.choice(PRODUCTS)
    cents = random.randint(int(low * 100), int(high * 100))
    return {
        "categoria": categoria,
        "producto_id": producto_id,
        "precio": cents / 100,
        "cantidad_vendida": quantity(),
    }


class Shopper(HttpUser):
    wait_time = between(0.0, 0.05)

    @task
    def buy(self):
        self.client.post("/venta", json=sale(), name="/venta")
