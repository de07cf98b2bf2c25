"""The comparator: discovered networks against hand-designed GoogLeNet at equal compute."""
