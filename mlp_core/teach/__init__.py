"""Teaching with the library: the seven steps of learning and the lessons' recipes."""
