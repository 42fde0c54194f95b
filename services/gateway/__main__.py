from services.gateway.server import run

run()
