using CsCheck;
using Pipelines.Core.Definitions;
using Pipelines.Core.Graph;

namespace Pipelines.Core.Tests.Graph;

/// <summary>Properties of the DAG and its cut into chains (routing slips), checked on random pipelines.</summary>
public sealed class PipelineGraphProperties
{
    /// <summary>Mostly one parent, so linear runs are long enough to cut; sometimes none or several, for forks and joins.</summary>
    private static readonly Gen<int> ParentCounts = Gen.Frequency((1, 0), (6, 1), (2, 2), (1, 3));

    /// <summary>The parents of each step, most often steps just before it.</summary>
    private static readonly Gen<int[][]> RandomParents =
        from count in Gen.Int[1, 40]
        from parents in Gen.Select(ParentCounts, Gen.Int[0, 999].Array[3], (k, picks) => (k, picks)).Array[count]
        select parents.Select((p, step) => step == 0 ? [] : p.picks.Take(p.k).Select(pick => NearbyEarlierStep(step, pick)).Distinct().ToArray()).ToArray();

    /// <summary>A random DAG, its steps written in a random order: order in the file must not matter.</summary>
    private static readonly Gen<PipelineDefinition> RandomDags =
        from parents in RandomParents
        from fileOrder in Gen.Shuffle(Enumerable.Range(0, parents.Length).ToArray())
        select Pipeline(parents, fileOrder);

    private static readonly Gen<PipelineDefinition> LinearPipelines =
        from count in Gen.Int[1, 60]
        from fileOrder in Gen.Shuffle(Enumerable.Range(0, count).ToArray())
        select Pipeline(Enumerable.Range(0, count).Select(step => step == 0 ? Array.Empty<int>() : [step - 1]).ToArray(), fileOrder);

    [Fact]
    public void every_step_belongs_to_exactly_one_chain() => RandomDags.Sample(pipeline =>
    {
        var graph = PipelineGraph.Build(pipeline);

        var chained = graph.Chains.SelectMany(c => c.Steps).ToList();
        Assert.Equal(pipeline.Steps.Select(s => s.Name).Order(StringComparer.Ordinal), chained.Order(StringComparer.Ordinal));
        foreach (var chain in graph.Chains)
        {
            Assert.All(chain.Steps, step => Assert.Equal(chain.Index, graph.ChainOfStep[graph.IndexOf(step)]));
        }
    }, print: Describe);

    [Fact]
    public void a_chain_is_linear_and_runs_its_steps_in_dependency_order() => RandomDags.Sample(pipeline =>
    {
        var graph = PipelineGraph.Build(pipeline);

        foreach (var chain in graph.Chains)
        {
            for (var position = 1; position < chain.Steps.Count; position++)
            {
                var previous = graph.IndexOf(chain.Steps[position - 1]);
                var step = graph.IndexOf(chain.Steps[position]);
                Assert.Equal([previous], graph.Parents[step]);
                Assert.Equal([step], graph.Children[previous]);
            }
        }
    }, print: Describe);

    [Fact]
    public void dependencies_between_chains_run_from_a_tail_to_a_head() => RandomDags.Sample(pipeline =>
    {
        var graph = PipelineGraph.Build(pipeline);

        for (var child = 0; child < pipeline.Steps.Count; child++)
        {
            foreach (var parent in graph.Parents[child])
            {
                var (from, to) = (graph.Chains[graph.ChainOfStep[parent]], graph.Chains[graph.ChainOfStep[child]]);
                if (from != to)
                {
                    Assert.Equal(from.Tail, graph.Step(parent).Name);
                    Assert.Equal(to.Head, graph.Step(child).Name);
                }
            }
        }
    }, print: Describe);

    [Fact]
    public void chain_parents_and_children_mirror_the_step_dependencies() => RandomDags.Sample(pipeline =>
    {
        var graph = PipelineGraph.Build(pipeline);

        foreach (var chain in graph.Chains)
        {
            var head = graph.IndexOf(chain.Head);
            var tail = graph.IndexOf(chain.Tail);
            Assert.Equal(graph.Parents[head].Select(p => graph.ChainOfStep[p]).Distinct().Order(), chain.Parents);
            Assert.Equal(graph.Children[tail].Select(c => graph.ChainOfStep[c]).Distinct().Order(), chain.Children);
            Assert.All(chain.Parents, parent => Assert.Contains(chain.Index, graph.Chains[parent].Children));
            Assert.All(chain.Children, child => Assert.Contains(chain.Index, graph.Chains[child].Parents));
            Assert.All(chain.Parents, parent => Assert.True(parent < chain.Index, "chains are listed in topological order"));
        }
    }, print: Describe);

    [Fact]
    public void chains_are_maximal() => RandomDags.Sample(pipeline =>
    {
        var graph = PipelineGraph.Build(pipeline);

        foreach (var chain in graph.Chains)
        {
            var tail = graph.IndexOf(chain.Tail);
            var continuesLinearly = graph.Children[tail] is [var only] && graph.Parents[only].Length == 1;
            Assert.False(continuesLinearly, $"chain {chain.Index} stops at '{chain.Tail}' though its only child has no other parent");
        }
    }, print: Describe);

    [Fact]
    public void topological_order_lists_every_step_once_after_all_its_parents() => RandomDags.Sample(pipeline =>
    {
        var graph = PipelineGraph.Build(pipeline);

        Assert.Equal(Enumerable.Range(0, pipeline.Steps.Count), graph.TopologicalOrder.Order());
        var position = new int[pipeline.Steps.Count];
        for (var i = 0; i < graph.TopologicalOrder.Count; i++)
        {
            position[graph.TopologicalOrder[i]] = i;
        }
        for (var step = 0; step < pipeline.Steps.Count; step++)
        {
            Assert.All(graph.Parents[step], parent => Assert.True(position[parent] < position[step]));
        }
    }, print: Describe);

    [Fact]
    public void a_level_is_one_more_than_the_deepest_parent() => RandomDags.Sample(pipeline =>
    {
        var graph = PipelineGraph.Build(pipeline);

        for (var step = 0; step < pipeline.Steps.Count; step++)
        {
            var expected = graph.Parents[step].Length == 0 ? 0 : graph.Parents[step].Max(p => graph.Levels[p]) + 1;
            Assert.Equal(expected, graph.Levels[step]);
        }
    }, print: Describe);

    [Fact]
    public void a_linear_pipeline_is_exactly_one_chain_in_dependency_order() => LinearPipelines.Sample(pipeline =>
    {
        var graph = PipelineGraph.Build(pipeline);

        var chain = Assert.Single(graph.Chains);
        Assert.Equal(Enumerable.Range(0, pipeline.Steps.Count).Select(Name), chain.Steps);
        Assert.Empty(chain.Parents);
        Assert.Empty(chain.Children);
    }, print: Describe);

    [Fact]
    public void a_dag_has_no_cycles_and_an_edge_back_to_an_ancestor_makes_one() =>
        RandomParents.Select(Gen.Int[0, 999], Gen.Int[0, 999], (parents, from, to) => (parents, from, to)).Sample(sample =>
        {
            var (parents, pickFrom, pickTo) = sample;
            Assert.Empty(PipelineGraph.FindCycles(parents.Length, step => parents[step]));
            if (parents.Length < 2)
            {
                return;
            }
            // Steps depend only on earlier ones, so making an earlier step depend on a later one that
            // reaches it closes a loop; the later step reaches every step it depends on transitively.
            var later = 1 + pickFrom % (parents.Length - 1);
            var ancestors = Ancestors(parents, later);
            if (ancestors.Count == 0)
            {
                return;
            }
            var earlier = ancestors[pickTo % ancestors.Count];
            var withBackEdge = parents.Select((p, step) => step == earlier ? [.. p, later] : p).ToArray();

            var cycles = PipelineGraph.FindCycles(withBackEdge.Length, step => withBackEdge[step]);

            var cycle = Assert.Single(cycles);
            Assert.Contains(earlier, cycle);
            Assert.Contains(later, cycle);
            for (var i = 0; i < cycle.Count; i++)
            {
                Assert.Contains(cycle[(i + 1) % cycle.Count], withBackEdge[cycle[i]]);
            }
        });

    private static int NearbyEarlierStep(int step, int pick) =>
        Math.Max(0, step - 1 - (int)(step * Math.Pow(pick / 1000.0, 3)));

    private static List<int> Ancestors(int[][] parents, int step)
    {
        var found = new HashSet<int>();
        var pending = new Stack<int>(parents[step]);
        while (pending.TryPop(out var next))
        {
            if (found.Add(next))
            {
                foreach (var parent in parents[next])
                {
                    pending.Push(parent);
                }
            }
        }
        return [.. found.Order()];
    }

    private static string Name(int step) => $"step-{step}";

    private static PipelineDefinition Pipeline(int[][] parents, int[] fileOrder) => new()
    {
        Name = "random",
        Steps = fileOrder.Select(step => new StepDefinition
        {
            Name = Name(step),
            Handler = "random.handler",
            DependsOn = parents[step].Select(Name).ToArray(),
        }).ToArray(),
    };

    private static string Describe(PipelineDefinition pipeline) =>
        string.Join("; ", pipeline.Steps.Select(s => s.DependsOn.Count == 0 ? s.Name : $"{s.Name} <- {string.Join(", ", s.DependsOn)}"));
}
