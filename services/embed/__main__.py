from services.embed.server import run

run()
