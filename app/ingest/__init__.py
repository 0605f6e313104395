"""Phone uploads: Health Auto Export's Apple Health JSON and the mobile app's typed signal readings."""
