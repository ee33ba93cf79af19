from taskflow import TaskGenerator

@TaskGenerator
def count_words(path):
    with open(path) as f:
        return len(f.read().split())

@TaskGenerator
def total(counts):
    return sum(counts)

counts = [count_words(f"data/{i}.txt") for i in range(100)]
result = total(counts)
