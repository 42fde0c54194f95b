from services.search.server import run

run()
