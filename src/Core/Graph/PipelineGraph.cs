using Pipelines.Core.Definitions;

namespace Pipelines.Core.Graph;

/// <summary>
/// A linear run of steps that becomes one routing slip: each step but the first has exactly one
/// parent, the previous step, and each step but the last has exactly one child, the next step.
/// </summary>
/// <param name="Index">Position in <see cref="PipelineGraph.Chains"/>, in topological order.</param>
/// <param name="Steps">Step names, in execution order.</param>
/// <param name="Parents">Chains that must complete before this one starts (the coordinator's joins).</param>
/// <param name="Children">Chains that wait on this one.</param>
public sealed record Chain(int Index, IReadOnlyList<string> Steps, IReadOnlyList<int> Parents, IReadOnlyList<int> Children)
{
    public string Head => Steps[0];
    public string Tail => Steps[^1];
}

/// <summary>
/// The DAG of a validated pipeline: topological order, levels and the cut into maximal linear
/// chains. Fork and join points fall between chains and belong to the coordinator.
/// </summary>
public sealed class PipelineGraph
{
    private readonly Dictionary<string, int> _index;

    private PipelineGraph(PipelineDefinition pipeline)
    {
        Pipeline = pipeline;
        var steps = pipeline.Steps;
        _index = new Dictionary<string, int>(steps.Count, StringComparer.Ordinal);
        for (var i = 0; i < steps.Count; i++)
        {
            _index[steps[i].Name] = i;
        }
        var children = new List<int>[steps.Count];
        var parents = new int[steps.Count][];
        for (var i = 0; i < steps.Count; i++)
        {
            children[i] = [];
        }
        for (var i = 0; i < steps.Count; i++)
        {
            parents[i] = steps[i].DependsOn.Distinct(StringComparer.Ordinal)
                .Select(d => _index.TryGetValue(d, out var p) ? p : throw new InvalidOperationException($"Step '{steps[i].Name}' depends on unknown step '{d}'; validate the pipeline first."))
                .ToArray();
            foreach (var parent in parents[i])
            {
                children[parent].Add(i);
            }
        }
        Parents = parents;
        Children = children.Select(c => c.ToArray()).ToArray();
        TopologicalOrder = Sort();
        Levels = ComputeLevels();
        (Chains, ChainOfStep) = Cut();
    }

    public PipelineDefinition Pipeline { get; }

    /// <summary>Parent step indices of each step (indices into <see cref="PipelineDefinition.Steps"/>).</summary>
    public IReadOnlyList<int[]> Parents { get; }

    public IReadOnlyList<int[]> Children { get; }

    /// <summary>Step indices such that every step comes after all of its parents; ties keep file order.</summary>
    public IReadOnlyList<int> TopologicalOrder { get; }

    /// <summary>0 for a step without dependencies, otherwise one more than its deepest parent.</summary>
    public IReadOnlyList<int> Levels { get; }

    public IReadOnlyList<Chain> Chains { get; }

    /// <summary>The chain each step belongs to.</summary>
    public IReadOnlyList<int> ChainOfStep { get; }

    public static PipelineGraph Build(PipelineDefinition pipeline) => new(pipeline);

    public int IndexOf(string step) => _index[step];

    public StepDefinition Step(int index) => Pipeline.Steps[index];

    /// <summary>
    /// Dependency cycles, one per strongly connected component, each as a list of node indices
    /// where each depends on the next and the last on the first. Self-loops are not reported here.
    /// </summary>
    public static IReadOnlyList<IReadOnlyList<int>> FindCycles(int count, Func<int, IReadOnlyList<int>> dependencies)
    {
        var cycles = new List<IReadOnlyList<int>>();
        foreach (var component in StronglyConnectedComponents(count, dependencies).Where(c => c.Count > 1))
        {
            var members = component.ToHashSet();
            var start = component.Min();
            // Shortest cycle through `start` inside the component, by breadth-first search.
            var previous = new Dictionary<int, int> { [start] = -1 };
            var queue = new Queue<int>([start]);
            var closing = -1;
            while (queue.Count > 0 && closing < 0)
            {
                var node = queue.Dequeue();
                foreach (var next in dependencies(node).Where(members.Contains))
                {
                    if (next == start)
                    {
                        closing = node;
                        break;
                    }
                    if (previous.TryAdd(next, node))
                    {
                        queue.Enqueue(next);
                    }
                }
            }
            var cycle = new List<int>();
            for (var node = closing; node != -1; node = previous[node])
            {
                cycle.Add(node);
            }
            cycle.Reverse();
            cycles.Add(cycle);
        }
        return cycles;
    }

    private static List<List<int>> StronglyConnectedComponents(int count, Func<int, IReadOnlyList<int>> edges)
    {
        // Tarjan's algorithm without recursion: a 10,000-step chain must not overflow the stack.
        var index = new int[count];
        var low = new int[count];
        var onStack = new bool[count];
        Array.Fill(index, -1);
        var stack = new Stack<int>();
        var components = new List<List<int>>();
        var next = 0;
        var work = new Stack<(int Node, int Edge)>();
        for (var root = 0; root < count; root++)
        {
            if (index[root] >= 0)
            {
                continue;
            }
            work.Push((root, 0));
            while (work.Count > 0)
            {
                var (node, edge) = work.Pop();
                if (edge == 0)
                {
                    index[node] = low[node] = next++;
                    stack.Push(node);
                    onStack[node] = true;
                }
                var targets = edges(node);
                if (edge < targets.Count)
                {
                    work.Push((node, edge + 1));
                    var target = targets[edge];
                    if (index[target] < 0)
                    {
                        work.Push((target, 0));
                    }
                    else if (onStack[target])
                    {
                        low[node] = Math.Min(low[node], index[target]);
                    }
                    continue;
                }
                if (low[node] == index[node])
                {
                    var component = new List<int>();
                    int member;
                    do
                    {
                        member = stack.Pop();
                        onStack[member] = false;
                        component.Add(member);
                    }
                    while (member != node);
                    components.Add(component);
                }
                if (work.Count > 0)
                {
                    var parent = work.Peek().Node;
                    low[parent] = Math.Min(low[parent], low[node]);
                }
            }
        }
        return components;
    }

    private int[] Sort()
    {
        // Kahn's algorithm with a min-heap on file position, so the order is stable and readable.
        var remaining = Parents.Select(p => p.Length).ToArray();
        var ready = new PriorityQueue<int, int>();
        for (var i = 0; i < remaining.Length; i++)
        {
            if (remaining[i] == 0)
            {
                ready.Enqueue(i, i);
            }
        }
        var order = new List<int>(remaining.Length);
        while (ready.TryDequeue(out var step, out _))
        {
            order.Add(step);
            foreach (var child in Children[step])
            {
                if (--remaining[child] == 0)
                {
                    ready.Enqueue(child, child);
                }
            }
        }
        if (order.Count != remaining.Length)
        {
            throw new InvalidOperationException($"Pipeline '{Pipeline.Name}' has a dependency cycle; validate it first.");
        }
        return [.. order];
    }

    private int[] ComputeLevels()
    {
        var levels = new int[Parents.Count];
        foreach (var step in TopologicalOrder)
        {
            levels[step] = Parents[step].Length == 0 ? 0 : Parents[step].Max(p => levels[p]) + 1;
        }
        return levels;
    }

    private (IReadOnlyList<Chain>, IReadOnlyList<int>) Cut()
    {
        var chainOf = new int[Parents.Count];
        var members = new List<List<int>>();
        foreach (var step in TopologicalOrder)
        {
            var parents = Parents[step];
            if (parents.Length == 1 && Children[parents[0]].Length == 1)
            {
                chainOf[step] = chainOf[parents[0]];
                members[chainOf[step]].Add(step);
            }
            else
            {
                chainOf[step] = members.Count;
                members.Add([step]);
            }
        }
        var chains = new List<Chain>(members.Count);
        for (var c = 0; c < members.Count; c++)
        {
            var head = members[c][0];
            var tail = members[c][^1];
            chains.Add(new Chain(
                c,
                members[c].Select(s => Step(s).Name).ToArray(),
                Parents[head].Select(p => chainOf[p]).Distinct().Order().ToArray(),
                Children[tail].Select(ch => chainOf[ch]).Distinct().Order().ToArray()));
        }
        return (chains, chainOf);
    }
}
