from services.chat.server import run

run()
