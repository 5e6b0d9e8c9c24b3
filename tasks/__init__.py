"""Task bodies, thin: validate input, call one service under worker/, record the outcome."""
