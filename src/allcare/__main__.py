from allcare.cli import app

app()
