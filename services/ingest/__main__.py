from services.ingest.server import run

run()
