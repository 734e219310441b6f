"""The picture reader: any picture of a digit or a number -> MNIST's 28x28 format, read."""
