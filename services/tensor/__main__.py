from services.tensor.server import run

run()
