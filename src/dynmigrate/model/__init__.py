"""Frozen value types shared by every stage (collect, graph, rules, plan, render)."""
